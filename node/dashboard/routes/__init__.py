"""The dashboard's routes, one module for each thing they serve; :func:`create_app`
(:mod:`node.dashboard.app`) registers them all behind its guards."""
