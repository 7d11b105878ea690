"""The providers' tracking webhooks (docs/architecture.md, "Delivery events").

``views`` checks a request (basic auth, the provider's signature, the signed timestamp's age)
and hands it to anymail's tracking view; anymail parses it and sends its ``tracking`` signal,
which ``events`` turns into ``DeliveryEvent`` rows, job delivery states and suppressions.
"""
