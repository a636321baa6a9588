"""Stages that add annotation columns to pairs (scores, features, embeddings, variants)."""
