"""Per-vendor payload builders and signing; :mod:`services.simulator.wire` turns them into requests."""
