/* threads.c: a small persistent thread pool for splitting one op over the machine's cores.
 *
 * bcml_parallel(n, fn, arg) runs fn(arg, k, n) once for every task k in [0, n): of T threads in
 * use, thread t (the caller is 0) starts with the block [n t / T, n (t + 1) / T), and a thread
 * that runs out takes the others' tasks not yet started. A kernel splits its output into tasks
 * from the shape alone, so it gets the same bits whatever the timing. Pool threads spin briefly
 * after a job (ops come in quick succession in a training step) and then sleep on a condition
 * variable. The pool serves one caller at a time: a second
 * thread calling while it is busy (sweep jobs), a call from inside a task, or a thread whose
 * limit is 1 runs its tasks itself. OpenBLAS is kept single-threaded by the binding, so BLAS
 * threads and these never nest. */
#define _POSIX_C_SOURCE 200809L
#include "bcml.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#define MAX_POOL 64
#define SPIN_ROUNDS 200000
#define YIELD_EVERY 256      /* spins between sched_yield calls */

static pthread_mutex_t busy = PTHREAD_MUTEX_INITIALIZER;     /* one caller at a time */
static pthread_mutex_t wake_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_cond = PTHREAD_COND_INITIALIZER;
static atomic_ulong generation;
static atomic_long pending;
static int pool_size = 0;          /* threads started (besides callers) */
static unsigned long start_gen[MAX_POOL + 1]; /* generation current when each thread was made */
static int want_threads = 1;       /* process default, set by bcml_set_num_threads */
static _Thread_local int thread_limit = 0; /* 0: no limit of this thread's own */
static _Thread_local int in_task = 0;

static struct {
    bcml_task_fn fn;
    void *arg;
    int64_t ntasks;
    int nthreads; /* threads taking part, caller included */
} job;

/* Each task of a job is claimed once. A thread first takes its own block of tasks (thread t of
 * T: tasks [n t / T, n (t + 1) / T), so the ops of a step that split a batch into tasks hand the
 * same rows to the same thread, and they stay in its cache) and then, from the last task down,
 * any that another thread has not started: an uneven split (a bias-gradient task beside the
 * product's, a thread the system ran late) no longer leaves one thread waiting for another.
 * Which thread runs a task never changes what the task computes. Jobs of more than MAX_CLAIM
 * tasks keep the fixed blocks. */
#define MAX_CLAIM 1024
static atomic_uchar claimed[MAX_CLAIM];

static void run_tasks(int id) {
    const int64_t n = job.ntasks;
    const int T = job.nthreads;
    const int claims = n <= MAX_CLAIM;
    for (int64_t k = n * id / T; k < n * (id + 1) / T; k++)
        if (!claims || !atomic_exchange_explicit(&claimed[k], 1, memory_order_relaxed)) job.fn(job.arg, k, n);
    for (int64_t k = claims ? n - 1 : -1; k >= 0; k--)
        if (!atomic_load_explicit(&claimed[k], memory_order_relaxed) &&
            !atomic_exchange_explicit(&claimed[k], 1, memory_order_relaxed))
            job.fn(job.arg, k, n);
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void *worker(void *p) {
    int id = (int)(intptr_t)p; /* 1 .. pool_size */
    /* not atomic_load(&generation): a job may have been issued before this thread ran */
    unsigned long seen = start_gen[id];
    in_task = 1;
    for (;;) {
        unsigned long g;
        int spins = 0;
        while ((g = atomic_load_explicit(&generation, memory_order_acquire)) == seen) {
            if (++spins < SPIN_ROUNDS) {
                /* on a machine with more runnable threads than cores, give the core away now
                 * and then: the caller (or another process) may be waiting for it */
                if (spins % YIELD_EVERY == 0) sched_yield();
                else cpu_relax();
                continue;
            }
            pthread_mutex_lock(&wake_lock);
            while ((g = atomic_load(&generation)) == seen) pthread_cond_wait(&wake_cond, &wake_lock);
            pthread_mutex_unlock(&wake_lock);
            break;
        }
        seen = g;
        if (id < job.nthreads) run_tasks(id);
        atomic_fetch_sub_explicit(&pending, 1, memory_order_release);
    }
    return NULL;
}

/* ---- fork safety ----------------------------------------------------------------------
 * A reader-writer lock around every BLAS call, writer-preferring: readers are the BLAS calls
 * (any number at once), the writer is a fork's prepare handler. While a fork waits, new BLAS
 * calls wait too, so a steady stream of them cannot starve the fork. A reader holds it only for
 * one BLAS call and takes no other lock meanwhile, so the fork's wait is bounded by the calls
 * in flight. (Own mutex + condition variable rather than glibc's rwlock kinds: portable.) */
static pthread_mutex_t blas_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t blas_cv = PTHREAD_COND_INITIALIZER;
static int blas_readers = 0, blas_writer = 0, blas_writers_waiting = 0;

void bcml_blas_enter(void) {
    bcml_atfork_install();
    pthread_mutex_lock(&blas_mu);
    while (blas_writer || blas_writers_waiting) pthread_cond_wait(&blas_cv, &blas_mu);
    blas_readers++;
    pthread_mutex_unlock(&blas_mu);
}

void bcml_blas_leave(void) {
    pthread_mutex_lock(&blas_mu);
    if (--blas_readers == 0 && blas_writers_waiting) pthread_cond_broadcast(&blas_cv);
    pthread_mutex_unlock(&blas_mu);
}

/* Lock order: the BLAS lock, then tensor.c's allocator cache mutex and grad lock (a thread
 * inside BLAS takes neither, and one holding either takes nothing else). */
static void fork_prepare(void) {
    pthread_mutex_lock(&blas_mu);
    blas_writers_waiting++;
    while (blas_readers || blas_writer) pthread_cond_wait(&blas_cv, &blas_mu);
    blas_writers_waiting--;
    blas_writer = 1;
    pthread_mutex_unlock(&blas_mu);
    bcml_tensor_fork_lock();
}

static void fork_parent(void) {
    bcml_tensor_fork_unlock();
    pthread_mutex_lock(&blas_mu);
    blas_writer = 0;
    pthread_cond_broadcast(&blas_cv);
    pthread_mutex_unlock(&blas_mu);
}

/* In a child made by fork() only the forking thread exists: the pool threads, and any thread
 * that was waiting on these locks, are gone. Locks and condition variables are made afresh
 * (a condition variable that had waiters cannot be reused), and the pool runs serially until
 * bcml_set_num_threads is called again there. */
static void fork_child(void) {
    bcml_tensor_fork_unlock();
    pthread_mutex_init(&blas_mu, NULL);
    pthread_cond_init(&blas_cv, NULL);
    blas_readers = blas_writer = blas_writers_waiting = 0;
    pthread_mutex_init(&busy, NULL);
    pthread_mutex_init(&wake_lock, NULL);
    pthread_cond_init(&wake_cond, NULL);
    pool_size = 0;
    in_task = 0;
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void register_atfork(void) { pthread_atfork(fork_prepare, fork_parent, fork_child); }

/* The one registration of bcml's fork handlers. */
void bcml_atfork_install(void) { pthread_once(&atfork_once, register_atfork); }

void bcml_set_num_threads(int n) {
    bcml_atfork_install();
    if (n < 1) n = 1;
    if (n > MAX_POOL + 1) n = MAX_POOL + 1;
    pthread_mutex_lock(&busy);
    while (pool_size < n - 1) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        start_gen[pool_size + 1] = atomic_load(&generation);
        int rc = pthread_create(&t, &attr, worker, (void *)(intptr_t)(pool_size + 1));
        pthread_attr_destroy(&attr);
        if (rc != 0) break; /* fewer threads: still correct */
        pool_size++;
    }
    want_threads = n <= pool_size + 1 ? n : pool_size + 1;
    pthread_mutex_unlock(&busy);
}

int bcml_get_num_threads(void) {
    int n = want_threads;
    if (thread_limit > 0 && thread_limit < n) n = thread_limit;
    return n;
}

void bcml_set_thread_limit(int n) { thread_limit = n > 0 ? n : 0; }

void bcml_parallel(int64_t ntasks, bcml_task_fn fn, void *arg) {
    int T = bcml_get_num_threads();
    if (T > ntasks) T = (int)ntasks;
    if (T <= 1 || in_task || pthread_mutex_trylock(&busy) != 0) {
        for (int64_t k = 0; k < ntasks; k++) fn(arg, k, ntasks);
        return;
    }
    if (T > pool_size + 1) T = pool_size + 1;
    job.fn = fn;
    job.arg = arg;
    job.ntasks = ntasks;
    job.nthreads = T;
    if (ntasks <= MAX_CLAIM)
        for (int64_t k = 0; k < ntasks; k++) atomic_store_explicit(&claimed[k], 0, memory_order_relaxed);
    atomic_store(&pending, pool_size);
    pthread_mutex_lock(&wake_lock);
    atomic_fetch_add_explicit(&generation, 1, memory_order_release);
    pthread_cond_broadcast(&wake_cond);
    pthread_mutex_unlock(&wake_lock);
    in_task = 1;
    run_tasks(0);
    in_task = 0;
    /* wait for the pool threads; past a short spin, yield: a pool thread not yet scheduled
     * (more runnable threads than cores) would otherwise wait for this spin's time slice */
    for (long spins = 1; atomic_load_explicit(&pending, memory_order_acquire) > 0; spins++) {
        if (spins % YIELD_EVERY == 0) sched_yield();
        else cpu_relax();
    }
    pthread_mutex_unlock(&busy);
}

/* ---- elementwise loops ------------------------------------------------------------------ */
typedef struct {
    bcml_range_fn fn;
    void *arg;
    int64_t n, chunk;
} range_job;

static void range_task(void *p, int64_t k, int64_t ntasks) {
    (void)ntasks;
    const range_job *j = p;
    int64_t lo = k * j->chunk, hi = lo + j->chunk < j->n ? lo + j->chunk : j->n;
    if (lo < hi) j->fn(j->arg, lo, hi);
}

void bcml_parallel_for(int64_t n, int64_t grain, bcml_range_fn fn, void *arg) {
    if (grain < 1) grain = 1;
    int64_t ntasks = n / grain;
    if (ntasks > 8) ntasks = 8;
    if (ntasks <= 1 || bcml_get_num_threads() <= 1) {
        if (n > 0) fn(arg, 0, n);
        return;
    }
    int64_t chunk = (n + ntasks - 1) / ntasks;
    chunk = (chunk + 15) / 16 * 16;   /* whole cache lines of floats per chunk */
    range_job j = {fn, arg, n, chunk};
    bcml_parallel((n + chunk - 1) / chunk, range_task, &j);
}

/* ---- self-test ------------------------------------------------------------------------- */
typedef struct {
    atomic_long runs[MAX_CLAIM];
    atomic_long by_caller[MAX_CLAIM];
    atomic_long done;
    pthread_t caller;
    int64_t n;
} selftest_job;

static double seconds_now(void) {
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void selftest_task(void *arg, int64_t k, int64_t n) {
    (void)n;
    selftest_job *j = arg;
    const int mine = pthread_equal(pthread_self(), j->caller) != 0;
    if (k == 0 && mine && bcml_get_num_threads() > 1) { /* the caller's first task: wait for every other one */
        const double t0 = seconds_now();
        while (atomic_load(&j->done) < j->n - 1 && seconds_now() - t0 < 2.0) sched_yield();
    }
    atomic_fetch_add(&j->runs[k], 1);
    atomic_fetch_add(&j->by_caller[k], mine);
    atomic_fetch_add(&j->done, 1);
}

bcml_status bcml_parallel_selftest(int64_t n, int64_t *runs, int64_t *by_caller, bcml_err *err) {
    if (n < 1 || n > MAX_CLAIM) return bcml_fail(err, BCML_EVALUE, "parallel_selftest: n must be in [1, %d]", MAX_CLAIM);
    selftest_job *j = calloc(1, sizeof *j);
    if (!j) return bcml_fail(err, BCML_ENOMEM, "out of memory");
    j->caller = pthread_self();
    j->n = n;
    bcml_parallel(n, selftest_task, j);
    for (int64_t k = 0; k < n; k++) {
        runs[k] = atomic_load(&j->runs[k]);
        by_caller[k] = atomic_load(&j->by_caller[k]);
    }
    free(j);
    return BCML_OK;
}
