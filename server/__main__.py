from machinima.cli import run

from .cli import app

run(app, prog_name="machinima server")
