"""Sillage's latent-map view: a separate process, a client of the engine over OSC.

Nothing here is imported by the engine (``instrument/``); the live transforms the engine needs
live in :mod:`mappings.latentmap`.
"""
