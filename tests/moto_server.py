"""moto's server, as the tests start it, minus two costs that grow with the
data and made the 1,000-cart fault proof (tests/tests/aws_faults.rs) run
for half an hour in over 20 GB:

1. moto keeps every model object it ever made (for /moto-api/data.json),
   and its DynamoDB copies an item on every read and write. DynamoDB objects
   are left untracked; the tests read only SES's sent messages there.
2. TransactWriteItems deep-copies every table it touches, to roll back on
   failure: each transaction costs as much as the whole table. Here only the
   items the transaction names are saved and restored.

Both patch moto's internals: moto is pinned (scripts/python-tools.sh).
Run as `python -c "$(cat moto_server.py)" -H 127.0.0.1 -p PORT`.
"""

import copy
import sys

from moto.core.common_models import BaseModel
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table


def _new(cls, *args, **kwargs):
    instance = object.__new__(cls)
    if not cls.__module__.startswith("moto.dynamodb"):
        cls.instances_tracked.append(instance)
    return instance


BaseModel.__new__ = _new

# moto's own rollback then puts back the very table it is given, a no-op;
# _transact_write_items below restores the named items instead.
Table.__deepcopy__ = lambda self, memo: self
_transact_write_items = DynamoDBBackend.transact_write_items


def _key(table, op_type, op):
    attrs = op["Item"] if op_type == "Put" else op["Key"]
    hash_key = DynamoType(attrs[table.hash_key_attr])
    range_key = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr else None
    return hash_key, range_key


def _restore(table, hash_key, range_key, prior):
    if range_key is None:
        if prior is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = prior
    elif prior is None:
        table.items.get(hash_key, {}).pop(range_key, None)
    else:
        table.items[hash_key][range_key] = prior


def _transact(self, transact_items):
    saved = []
    for item in transact_items:
        op_type, op = next(iter(item.items()))
        table = self.tables.get(op.get("TableName"))
        try:
            hash_key, range_key = _key(table, op_type, op)
            prior = copy.deepcopy(table.get_item(hash_key, range_key))
        except Exception:  # moto itself reports a malformed operation
            continue
        saved.append((table, hash_key, range_key, prior))
    try:
        return _transact_write_items(self, transact_items)
    except Exception:
        for table, hash_key, range_key, prior in reversed(saved):
            _restore(table, hash_key, range_key, prior)
        raise


DynamoDBBackend.transact_write_items = _transact

from moto.server import main  # noqa: E402

sys.exit(main())
