"""PLACEHOLDER - being written."""
def print_program(program):
    return repr(program)
