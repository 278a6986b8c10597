"""azmem.embeddings"""
