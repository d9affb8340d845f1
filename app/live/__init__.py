"""Live conversations: the bus that tells every worker something happened (bus.py, and its
backends.py); the event log and presence come with the streams that use them."""
