"""The Open Inference Protocol (KServe / Triton V2), REST side, with Triton's binary tensor data."""
