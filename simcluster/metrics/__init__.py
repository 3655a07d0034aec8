"""Records written during a run, and pure summaries over them."""
