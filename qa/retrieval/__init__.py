"""Find the passages for a question: dense and BM25 runs, fused, locally or on Milvus."""
