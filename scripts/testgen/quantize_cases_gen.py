# Reference values for crates/runtime/src/ops/quantized/quantize_tests.rs,
# from onnx.reference (onnx 1.17), printed for pasting there:
# python3 scripts/testgen/quantize_cases_gen.py
import numpy as np, onnx
from onnx import helper, TensorProto as TP
from onnx.reference import ReferenceEvaluator
def run(op, opset, inputs, attrs, out_types):
    names=[f"x{i}" if v is not None else "" for i,v in enumerate(inputs)]
    node=helper.make_node(op,names,[f"y{i}" for i in range(len(out_types))],**attrs)
    ins=[helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype) if not hasattr(v,'tp') else v.tp, v.shape) for n,v in zip(names,inputs) if n]
    g=helper.make_graph([node],"g",ins,[helper.make_tensor_value_info(f"y{i}",t,None) for i,t in enumerate(out_types)])
    m=helper.make_model(g,opset_imports=[helper.make_opsetid("",opset)])
    r=ReferenceEvaluator(m)
    return r.run(None,{n:v for n,v in zip(names,inputs) if n})
from onnx._custom_element_types import int4, uint4
x=np.array([[-3.5,-0.25,0.25,0.75,1.0],[2.5,-2.5,7.9,-9.0,0.5]],np.float32)
s=np.array([[0.5,1.0,0.25],[0.5,2.0,1.0]],np.float32)
zp=np.array([[1,-2,0],[0,3,-1]]).astype(int4)
print("q blocked i4", run("QuantizeLinear",21,[x,s,zp],dict(axis=1,block_size=2),[TP.INT4])[0].astype(np.int8).tolist())
x2=np.array([[0.5,1.5,2.5,-0.5],[-1.5,-2.5,300.0,-300.0],[0.3,0.7,1.3,2.6]],np.float32)
s2=np.array([1.0,1.0,0.5],np.float32); z2=np.array([128,0,10],np.uint8)
print("q axis0 u8", run("QuantizeLinear",13,[x2,s2,z2],dict(axis=0),[TP.UINT8])[0].tolist())
x3=np.array([[0,15,7,8,3],[1,2,14,9,4]],np.uint8).astype(uint4)
s3=np.array([[0.5,0.25,2.0],[1.0,0.125,3.0]],np.float32)
z3=np.array([[8,1,0],[15,4,2]],np.uint8).astype(uint4)
print("dq blocked u4", run("DequantizeLinear",21,[x3,s3,z3],dict(axis=-1,block_size=2),[TP.FLOAT])[0].tolist())
x4=np.array([-32768,0,32767,100],np.int16); 
print("dq i16", run("DequantizeLinear",21,[x4,np.array(0.01,np.float32),np.array(-5,np.int16)],{},[TP.FLOAT])[0].tolist())
x5=np.array([1000.0,-70000.0,3.49],np.float32)
print("q out i16", run("QuantizeLinear",21,[x5,np.array(0.5,np.float32)],dict(output_dtype=TP.INT16),[TP.INT16])[0].tolist())
x6=np.array([[1.0,-2.0],[0.3,5.0]],np.float32)
print("dyn", [v.tolist() for v in run("DynamicQuantizeLinear",11,[x6],{},[TP.UINT8,TP.FLOAT,TP.UINT8])])
