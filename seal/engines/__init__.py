"""Engines: texts in, numbers or labels out. The reward-model scorer, the sentence encoder and the LLM client know
nothing of the store or the stages, so the same objects run in a notebook, a stage or a Ray worker."""
