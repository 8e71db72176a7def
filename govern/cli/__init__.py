"""The command line: thin Typer commands that parse, call one service and print.

Only typer and the standard library are imported at module level here, so that
``govern --help`` starts fast; services are imported inside each command.
"""
