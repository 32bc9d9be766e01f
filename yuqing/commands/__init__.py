"""Subcommands of `yuqing`, one module per stage; registered in yuqing/cli.py."""
