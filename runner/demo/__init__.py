"""The demo: deterministic synthetic traffic (`generate`), the HTML report (`report`) and the
first run of the warehouse that strings them together (`pipeline`)."""
