//! `AttributeProto` <-> [`Attr`].

use whittle_ir::Attr;

use crate::limits::Budget;
use crate::proto::attribute_proto::AttributeType;
use crate::proto::AttributeProto;
use crate::tensor::{decode_tensor, tensor_to_proto, TensorCtx};

/// Converts one attribute. Errors are plain reasons; the caller names the
/// node. Subgraphs, sparse tensors, tensor lists and type protos become
/// [`Attr::Unsupported`] so the op using them is reported as unsupported
/// rather than misread.
pub(crate) fn attr_from_proto(
    a: &AttributeProto,
    ctx: &TensorCtx<'_>,
    budget: &mut Budget,
) -> Result<Attr, String> {
    if !a.ref_attr_name().is_empty() {
        return Err(format!(
            "attribute '{}' refers to function attribute '{}', which only makes sense inside a function body",
            a.name(),
            a.ref_attr_name()
        ));
    }
    let code = a.r#type.unwrap_or(0);
    let kind = match AttributeType::try_from(code) {
        Ok(AttributeType::Undefined) => infer_kind(a)
            .ok_or_else(|| format!("attribute '{}' has no type and no value", a.name()))?,
        Ok(k) => k,
        Err(_) => {
            return Err(format!(
                "attribute '{}' has unknown type code {code}",
                a.name()
            ))
        }
    };
    let utf8 = |bytes: &[u8]| {
        String::from_utf8(bytes.to_vec())
            .map_err(|_| format!("attribute '{}' holds a string that is not UTF-8", a.name()))
    };
    Ok(match kind {
        AttributeType::Float => Attr::Float(a.f()),
        AttributeType::Int => Attr::Int(a.i()),
        AttributeType::String => Attr::String(utf8(a.s())?),
        AttributeType::Tensor => {
            let t =
                a.t.as_ref()
                    .ok_or_else(|| format!("tensor attribute '{}' has no tensor", a.name()))?;
            let label = match t.name() {
                "" => a.name(),
                n => n,
            };
            Attr::Tensor(decode_tensor(t, label, ctx, Some(budget)).map_err(|e| e.to_string())?)
        }
        AttributeType::Floats => Attr::Floats(a.floats.clone()),
        AttributeType::Ints => Attr::Ints(a.ints.clone()),
        AttributeType::Strings => Attr::Strings(
            a.strings
                .iter()
                .map(|s| utf8(s))
                .collect::<Result<_, _>>()?,
        ),
        AttributeType::Graph => Attr::Unsupported("graph".into()),
        AttributeType::Graphs => Attr::Unsupported("graphs".into()),
        AttributeType::Tensors => Attr::Unsupported("tensors".into()),
        AttributeType::SparseTensor => Attr::Unsupported("sparse_tensor".into()),
        AttributeType::SparseTensors => Attr::Unsupported("sparse_tensors".into()),
        AttributeType::TypeProto => Attr::Unsupported("type_proto".into()),
        AttributeType::TypeProtos => Attr::Unsupported("type_protos".into()),
        // infer_kind never yields Undefined.
        AttributeType::Undefined => return Err(format!("attribute '{}' has no type", a.name())),
    })
}

/// Files from before `type` was mandatory (IR < 2) only set a value field.
fn infer_kind(a: &AttributeProto) -> Option<AttributeType> {
    Some(if a.f.is_some() {
        AttributeType::Float
    } else if a.i.is_some() {
        AttributeType::Int
    } else if a.s.is_some() {
        AttributeType::String
    } else if a.t.is_some() {
        AttributeType::Tensor
    } else if a.g.is_some() {
        AttributeType::Graph
    } else if !a.floats.is_empty() {
        AttributeType::Floats
    } else if !a.ints.is_empty() {
        AttributeType::Ints
    } else if !a.strings.is_empty() {
        AttributeType::Strings
    } else if !a.tensors.is_empty() {
        AttributeType::Tensors
    } else if !a.graphs.is_empty() {
        AttributeType::Graphs
    } else {
        return None;
    })
}

/// The ONNX form of an attribute, or `None` for [`Attr::Unsupported`],
/// whose value was not kept at import and so cannot be written back.
pub(crate) fn attr_to_proto(name: &str, attr: &Attr) -> Option<AttributeProto> {
    let mut a = AttributeProto {
        name: Some(name.to_string()),
        ..AttributeProto::default()
    };
    let kind = match attr {
        Attr::Float(v) => {
            a.f = Some(*v);
            AttributeType::Float
        }
        Attr::Int(v) => {
            a.i = Some(*v);
            AttributeType::Int
        }
        Attr::String(v) => {
            a.s = Some(v.as_bytes().to_vec());
            AttributeType::String
        }
        Attr::Tensor(t) => {
            a.t = Some(tensor_to_proto("", t));
            AttributeType::Tensor
        }
        Attr::Floats(v) => {
            a.floats = v.clone();
            AttributeType::Floats
        }
        Attr::Ints(v) => {
            a.ints = v.clone();
            AttributeType::Ints
        }
        Attr::Strings(v) => {
            a.strings = v.iter().map(|s| s.as_bytes().to_vec()).collect();
            AttributeType::Strings
        }
        Attr::Unsupported(_) => return None,
    };
    a.r#type = Some(kind as i32);
    Some(a)
}
