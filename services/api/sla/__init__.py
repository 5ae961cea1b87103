"""SLA configuration endpoints: business-hours calendars and versioned policies per tenant."""
