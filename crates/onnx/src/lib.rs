//! ONNX import and export (host only).
