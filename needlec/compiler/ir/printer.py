"""PLACEHOLDER - being written."""
def print_graph(graph, elide_constants=None):
    lines = [f"graph @{graph.name}"]
    for n in graph.nodes:
        lines.append(repr(n))
    return "\n".join(lines)
