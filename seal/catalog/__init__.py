"""The column contracts of the store: how each annotation column is named and typed, and readers of the run
records that say what a store holds (scored reward models, labelled feature sets, perturbations, embeddings).

Stages write these columns and analyses read them; both import the contracts from here, so an analysis never
imports a stage. This room imports only the store, the schemas and the errors.
"""
