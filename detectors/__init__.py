"""Detectors: small units that flag suspicious patterns in the event stream.

The contract is in ``detectors/base.py``; ``registry.default_detectors()`` lists what runs.
"""
