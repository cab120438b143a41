# chainstore: PGXS build. `make`, `make install`, `make installcheck`.
MODULE_big = chainstore
OBJS = \
	src/chainstore.o \
	src/hashes.o \
	src/keccak.o \
	src/merkle.o \
	src/canonical.o \
	src/capture.o \
	src/seal.o \
	src/functions.o \
	src/cid.o \
	src/http.o \
	src/jsonutil.o \
	src/breaker.o \
	src/sink_ipfs.o \
	src/worker.o

EXTENSION = chainstore
DATA = sql/chainstore--0.1.0.sql
PGFILEDESC = "chainstore - tamper-evident tables anchored to public ledgers"

REGRESS = hashes merkle encoding track capture seal verify determinism security cid sinks
REGRESS_OPTS = --inputdir=.
ISOLATION = concurrency
ISOLATION_OPTS =

PG_CPPFLAGS = -Isrc $(CS_WERROR)
SHLIB_LINK = -lcrypto -lcurl -ljansson

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies unless PostgreSQL was configured with
# --enable-depend (Debian's is not): rebuild every object when a header changes.
$(OBJS): $(wildcard src/*.h)
