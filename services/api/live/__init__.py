"""The live view: backlog, queues and SLA clocks from the conversations table."""
