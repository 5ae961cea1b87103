"""Local SupportPulse stack without Docker: Kafka (KRaft), PostgreSQL, Prometheus and Alertmanager.

    from services.stack import up, down, status
    info = up()            # installs what is missing, starts, waits until healthy; idempotent
    info.kafka_bootstrap   # "127.0.0.1:19092"

CLI: `python -m services.stack --help`.
"""

from services.stack.component import ComponentStatus
from services.stack.errors import StackError
from services.stack.lifecycle import StackInfo, down, reset, status, up

__all__ = ["ComponentStatus", "StackError", "StackInfo", "down", "reset", "status", "up"]
