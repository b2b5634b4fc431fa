/* Maglev lookup-table population (Eisenbud et al., NSDI 2016, section 3.4), weighted by turn
 * frequency. Python computes each backend's offset and skip and the turn order; this only runs the
 * hot loop, which would take hundreds of milliseconds in Python for N=1000, M=65537. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Next slot on a preference list. c + skip can exceed 32 bits when m > 2**31, so compare with
 * the distance to m instead of adding first. */
static inline uint32_t step(uint32_t c, uint32_t skip, uint32_t m)
{
    return c >= m - skip ? c - (m - skip) : c + skip;
}

/* Backend i takes one turn: the first free slot on its preference list becomes its own. */
static inline void claim(uint32_t *cursor, const uint32_t *skip, uint32_t i, uint32_t m,
                         int32_t *out)
{
    uint32_t c = cursor[i];
    while (out[c] >= 0)
        c = step(c, skip[i], m);
    out[c] = (int32_t)i;
    cursor[i] = step(c, skip[i], m);
}

/* Round of backend i's k-th turn (k >= 1): the least r with floor((r+1)w/wmax) >= k. */
static inline uint64_t turn_round(uint64_t k, uint64_t w, uint64_t wmax)
{
    return (k * wmax + w - 1) / w - 1;
}

static void sift_down(uint64_t *heap, size_t len, size_t pos)
{
    uint64_t key = heap[pos];
    for (;;) {
        size_t child = 2 * pos + 1;
        if (child >= len)
            break;
        if (child + 1 < len && heap[child + 1] < heap[child])
            child++;
        if (heap[child] >= key)
            break;
        heap[pos] = heap[child];
        pos = child;
    }
    heap[pos] = key;
}

/* out[slot] = index of the backend (in the order of the input arrays) or -1 when no backend has
 * a non-zero weight. A backend with weight w takes a turn in round r when floor((r+1)w/wmax)
 * exceeds floor(rw/wmax), so turn frequency is proportional to weight; within a round, turns go
 * in index order. Needs every skip coprime to m (checked by the caller), or claim() never ends. */
static int populate(const uint32_t *offset, const uint32_t *skip, const uint32_t *weight,
                    uint32_t n, uint32_t m, int32_t *out)
{
    uint64_t wmax = 0, wmin = UINT64_MAX;
    uint32_t active = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (weight[i] == 0)
            continue;
        active++;
        if (weight[i] > wmax)
            wmax = weight[i];
        if (weight[i] < wmin)
            wmin = weight[i];
    }
    for (uint32_t s = 0; s < m; s++)
        out[s] = -1;
    if (active == 0)
        return 0;

    uint32_t *cursor = malloc(sizeof(*cursor) * (size_t)n);
    if (!cursor)
        return -1;
    for (uint32_t i = 0; i < n; i++)
        cursor[i] = offset[i] % m;

    uint32_t filled = 0;
    if (wmin == wmax) {
        /* Equal weights (the common case): every active backend takes a turn every round. */
        for (;;)
            for (uint32_t i = 0; i < n; i++) {
                if (weight[i] == 0)
                    continue;
                claim(cursor, skip, i, m, out);
                if (++filled == m)
                    goto done;
            }
    }

    /* Unequal weights: scanning all n backends every round costs O(rounds * n), about 65M steps
     * for one heavy backend among 999 light ones. Instead keep each backend's next turn in a
     * min-heap keyed (round << 32 | index), which pops turns in exactly the scan's order. The
     * heaviest backend takes a turn every round, so all slots are filled before round m and
     * turns at round >= m can be dropped, which also keeps the key within 64 bits. */
    uint64_t *heap = malloc(sizeof(*heap) * (size_t)active);
    uint32_t *turns = calloc(n, sizeof(*turns));
    if (!heap || !turns) {
        free(heap);
        free(turns);
        free(cursor);
        return -1;
    }
    size_t len = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (weight[i] == 0)
            continue;
        uint64_t r = turn_round(1, weight[i], wmax);
        if (r < m)
            heap[len++] = r << 32 | i;
    }
    for (size_t pos = len / 2; pos-- > 0;)
        sift_down(heap, len, pos);
    while (filled < m && len > 0) {
        uint32_t i = (uint32_t)heap[0];
        claim(cursor, skip, i, m, out);
        filled++;
        uint64_t r = turn_round((uint64_t)++turns[i] + 1, weight[i], wmax);
        if (r < m)
            heap[0] = r << 32 | i;
        else
            heap[0] = heap[--len];
        sift_down(heap, len, 0);
    }
    free(heap);
    free(turns);
done:
    free(cursor);
    return 0;
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static PyObject *maglev_fill(PyObject *self, PyObject *args)
{
    Py_buffer offset, skip, weight, out;
    Py_ssize_t m;
    (void)self;
    /* "n" rather than "I": "I" silently wraps negative and oversized m. */
    if (!PyArg_ParseTuple(args, "y*y*y*nw*", &offset, &skip, &weight, &m, &out))
        return NULL;
    Py_ssize_t n = offset.len / 4;
    PyObject *result = NULL;
    if (offset.len % 4 || skip.len != offset.len || weight.len != offset.len) {
        PyErr_SetString(PyExc_ValueError, "offset, skip and weight must be equal-length uint32 arrays");
    } else if (n > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "too many backends for int32 slot values");
    } else if (m < 2 || m > INT32_MAX || out.len != m * 4) {
        PyErr_SetString(PyExc_ValueError, "out must be an int32 array of m slots, 2 <= m < 2**31");
    } else {
        const uint32_t *sk = skip.buf;
        int bad = 0;
        /* A skip sharing a factor with m walks a partial cycle and could spin forever. */
        for (Py_ssize_t i = 0; i < n && !bad; i++)
            if (sk[i] == 0 || sk[i] >= (uint64_t)m || gcd(sk[i], (uint64_t)m) != 1)
                bad = 1;
        if (bad) {
            PyErr_SetString(PyExc_ValueError, "every skip must be in [1, m-1] and coprime to m");
        } else {
            int rc;
            Py_BEGIN_ALLOW_THREADS
            rc = populate(offset.buf, skip.buf, weight.buf, (uint32_t)n, (uint32_t)m, out.buf);
            Py_END_ALLOW_THREADS
            if (rc)
                PyErr_NoMemory();
            else
                result = Py_NewRef(Py_None);
        }
    }
    PyBuffer_Release(&offset);
    PyBuffer_Release(&skip);
    PyBuffer_Release(&weight);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"fill", maglev_fill, METH_VARARGS,
     "fill(offset, skip, weight, m, out): populate a Maglev table in place."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_maglev", NULL, -1, methods};

PyMODINIT_FUNC PyInit__maglev(void) { return PyModule_Create(&module); }
