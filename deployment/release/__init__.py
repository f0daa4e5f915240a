"""Steps every end-to-end workflow shares: record the aliases at the start, summarise at the end."""
