import numpy as np

from sae_unlearn.evaluation.packing import Trie, common_prefix, pack_rows


def test_trie_merges_shared_prefixes():
    trie = Trie()
    assert trie.add([1, 2, 3]) == [0, 1, 2]
    assert trie.add([1, 2, 4]) == [0, 1, 3]
    assert trie.add([5]) == [4]
    assert trie.tokens == [1, 2, 3, 4, 5]
    assert trie.parents == [-1, 0, 1, 1, -1]
    assert trie.depths == [0, 1, 2, 2, 0]
    assert trie.new_nodes([1, 2, 9, 9]) == 2 and trie.new_nodes([1, 2]) == 0
    expected = np.array(
        [
            [1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0],
            [1, 1, 1, 0, 0],
            [1, 1, 0, 1, 0],
            [0, 0, 0, 0, 1],
        ],
        dtype=bool,
    )
    np.testing.assert_array_equal(trie.ancestry(), expected)


def test_common_prefix_and_rows():
    assert common_prefix([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    assert common_prefix([[1], [2]]) == 0
    full = [[9, 1, 2, 3], [9, 1, 2, 4], [9, 5, 6, 7]]
    rows = pack_rows(full, shared=1, max_tokens=4)
    # The first two share [1, 2] and fit in 4 nodes; the third needs a row of its own.
    assert [[i for i, _ in members] for _, members in rows] == [[0, 1], [2]]
    assert rows[0][0].tokens == [1, 2, 3, 4]
    assert rows[0][1] == [(0, [0, 1, 2]), (1, [0, 1, 3])]
