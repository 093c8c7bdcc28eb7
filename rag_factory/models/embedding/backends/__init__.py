"""One backend per model format; each is imported lazily so the ONNX path never imports torch."""
