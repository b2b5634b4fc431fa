"""A VIP's ACL word (shoal_acl_words_v1): its parity picks the ACL id in force, and it never
takes a value twice, so a session way's record of it names one list (bpf/lb/acl.h)."""

from __future__ import annotations

import ctypes

from hypothesis import given
from hypothesis import strategies as st

from shoal.dataplane import abi
from shoal.dataplane.acl import AclTables, acl_ids_of, next_word
from shoal.dataplane.maps import FakeMap, TypedMap

U32 = ctypes.c_uint32


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**20))
def test_the_next_word_selects_the_id_and_is_new(word: int, acl_id: int) -> None:
    nxt = next_word(word, acl_id)
    assert nxt & 1 == acl_id & 1 and 0 < nxt < 2**32
    assert nxt != word
    assert (nxt - word) % 2**32 <= 2 or word >= 2**32 - 2  # the least step; 0 skipped at the wrap


@given(st.lists(st.booleans(), min_size=1, max_size=300))
def test_a_run_of_switches_never_repeats_a_word(to_second: list[bool]) -> None:
    """Whatever sequence of ids a VIP switches to (the planner alternates them, a list
    dropped and added again starts at the first), the words all differ."""
    first, second = acl_ids_of(5)
    word, seen = 0, set()
    for pick in to_second:
        word = next_word(word, second if pick else first)
        assert word not in seen
        seen.add(word)


def tables(ids: dict[int, int], words: dict[int, int]) -> AclTables:
    def array(values: dict[int, int]) -> TypedMap[U32, U32]:
        m: TypedMap[U32, U32] = TypedMap(FakeMap(4, 4, 16, is_array=True), U32, U32)
        for k, v in values.items():
            m.set(k, U32(v))
        return m

    trie = FakeMap(ctypes.sizeof(abi.Acl4Key), 4, 16)
    trie6 = FakeMap(ctypes.sizeof(abi.Acl6Key), 4, 16)
    return AclTables(
        array(ids),
        array(words),
        TypedMap(trie, abi.Acl4Key, U32),
        TypedMap(trie6, abi.Acl6Key, U32),
    )


def test_renewal_moves_each_word_to_a_new_value_selecting_the_recorded_id() -> None:
    """Upgrade: no words yet, ids 7 (VIP 3, second id) and 10 (VIP 5, first). After a
    downgrade and back: VIP 4's word (9) selects its second id but the older program switched
    it to its first (8). VIP 6 never had a list (id 0 is not one of its ids): untouched. VIP
    0's id 0 cannot be told from none, and renewing a word of a VIP without a list is harmless
    (the program reads it only for VIPs flagged SHOAL_VIP_F_ACL)."""
    acl = tables({3: 7, 4: 8, 5: 10}, {4: 9, 6: 0})
    assert acl.renew_words() == 4
    assert [acl.active_id(v) for v in (3, 4, 5)] == [7, 8, 10]
    assert acl.word(4) > 9 and acl.word(3) and acl.word(5)
    assert acl.word(6) == 0
    before = {v: acl.word(v) for v in (3, 4, 5)}
    acl.renew_words()  # every load renews: records from before it are checked again
    assert all(acl.word(v) not in (0, before[v]) for v in before)
    assert [acl.active_id(v) for v in (3, 4, 5)] == [7, 8, 10]


def test_a_switch_writes_the_word_and_the_id_for_older_programs() -> None:
    acl = tables({}, {})
    acl.switch({2: 5})
    assert acl.active_id(2) == 5 and acl.ids.get(2).value == 5  # type: ignore[union-attr]
    w = acl.word(2)
    acl.switch({2: 4})
    assert acl.active_id(2) == 4 and acl.word(2) > w
