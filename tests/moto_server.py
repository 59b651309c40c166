"""moto's server, as the tests start it, minus two costs that grow with the
data and made the 1,000-cart fault proof (tests/tests/aws_faults.rs) run
for half an hour in over 20 GB:

1. moto keeps every model object it ever made (for /moto-api/data.json),
   and its DynamoDB copies an item on every read and write. DynamoDB objects
   are left untracked; the tests read only SES's sent messages there.
2. TransactWriteItems deep-copies every table it touches, to roll back on
   failure: each transaction costs as much as the whole table. Here only the
   items the transaction names are saved and restored.
3. Query starts from every item of the table, sorted: each query costs a
   sort of the whole table. Here it starts from the items of the queried
   partition (for an index: those whose index hash key matches, unsorted,
   as moto sorts its results itself); moto's own filters still run.

Both patch moto's internals: moto is pinned (scripts/python-tools.sh).
Run as `python -c "$(cat moto_server.py)" -H 127.0.0.1 -p PORT`.
"""

import copy
import inspect
import sys
import threading

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

# Per thread (the server answers requests on threads): which items this
# thread's query starts from; None outside a query.
_scope = threading.local()
_all_items = Table.all_items
_query = Table.query
_query_signature = inspect.signature(Table.query)


def _unsorted_items(table):
    for hash_set in table.items.values():
        if table.range_key_attr:
            yield from hash_set.values()
        else:
            yield hash_set


def _equal(found, wanted):
    return found is not None and found == wanted


def _scoped_all_items(self):
    pick = getattr(_scope, "pick", None)
    return _all_items(self) if pick is None else pick(self)


def _scoped_query(self, *args, **kwargs):
    arguments = _query_signature.bind(self, *args, **kwargs).arguments
    if arguments.get("index_name") is None:
        hash_key = arguments.get("hash_key")

        def pick(table):
            found = table.items.get(hash_key) if hash_key is not None else None
            if found is None:
                return []
            return list(found.values()) if table.range_key_attr else [found]

    else:
        conditions = arguments.get("hash_key_conditions") or []

        def pick(table):
            return [
                item
                for item in _unsorted_items(table)
                if all(_equal(item.attrs.get(name), value) for name, value in conditions)
            ]

    _scope.pick = pick
    try:
        return _query(self, *args, **kwargs)
    finally:
        _scope.pick = None


Table.all_items = _scoped_all_items
Table.query = _scoped_query

from moto.server import main  # noqa: E402

sys.exit(main())
