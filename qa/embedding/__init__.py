"""Turn text into vectors: the packaged model, its ONNX export and runtime, and Ray jobs."""
