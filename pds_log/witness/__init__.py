"""A C2SP tlog-witness (https://c2sp.org/tlog-witness) for PV epoch logs, and its client.

* config.py  -- the witness directory: witness.yaml (name, logs), witness.key, state.sqlite
* state.py   -- the add-checkpoint decision, made and persisted in one SQLite transaction
* server.py  -- `POST /add-checkpoint` over HTTP (`pds witness serve`)
* client.py  -- submit a checkpoint to several witnesses, collect their cosignatures
"""
