"""What the model is told and may do: the tools over the shop's catalog (tools.py), the cards
built from their results (cards.py), and the tool loop around a provider (loop.py)."""
