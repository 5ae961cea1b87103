"""Traffic simulator: a support team's vendor webhooks (Chatwoot, Twilio TaskRouter, Asterisk).

``model`` writes stories (pure, seeded), ``vendors`` renders and signs them as each vendor
would, ``runner`` plays them against the ingest service in real time, ``cli`` is the
``supportpulse simulate`` front end. Nothing here imports another service.
"""
