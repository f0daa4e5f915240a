"""The local stack: real servers on one machine (`mlops up | down | status | logs`)."""
