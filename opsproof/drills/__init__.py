"""Drills: steps run by one generic runner (runner.py) that times each and fills the drill record.

The restore drill (opsproof.backups.restore) and every DR drill (dr.py) are lists of steps on it. A DR
step type is a module here (command.py ``run``, acting.py ``promote``, restore.py, health.py
``wait_healthy``); the ``sandbox`` steps live in the sandbox package and are found through
``STEP_TYPES``, so the engine never imports the sandbox.
"""
