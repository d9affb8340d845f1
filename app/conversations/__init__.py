"""Live conversations (docs/live.md): the notices that wake live streams, the shopper's
presence, handing a conversation over to a person and back, and the streams themselves."""
