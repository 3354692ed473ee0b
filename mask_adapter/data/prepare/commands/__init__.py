"""One module per ``datasets/prepare_<name>.py`` script, named like it, holding the script's ``main(argv)``.

The scripts in ``datasets/`` only call these; ``main(argv)`` with ``argv`` given raises one-line exceptions on bad
input, and with ``argv`` None (the command line) prints one ``error:`` line and returns 1.
"""
