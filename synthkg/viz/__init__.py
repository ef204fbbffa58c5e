"""Looking at the graph: `synthkg show` (synthkg.viz.graph.describe_entities) and self-contained HTML
views (synthkg.viz.html), drawn with the vis-network library bundled here."""
