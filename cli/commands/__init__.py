"""The ``proctor`` command's commands, one module per group; ``cli.main`` assembles them."""
