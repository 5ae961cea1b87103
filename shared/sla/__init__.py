"""The SLA engine's pure core: business-hours calendars, pausing clocks, policies, deadlines.

No I/O and no service imports: the aggregator and the API wire it in (see docs/sla.md).
"""
