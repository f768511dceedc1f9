"""tidegate edge: the OT-side agent and the IT-side receiver.

The Rust core is `edge._core`; importing this package does not load it, so
pure-Python parts (config, sim, datasets) stay importable on their own.
"""

__version__ = "0.1.0"
