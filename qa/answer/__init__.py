"""Choose the answering sentences among the retrieved passages, and cite them."""
