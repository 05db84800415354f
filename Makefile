# rollback: PGXS build, plus the two developer commands (demo, test).

EXTENSION = rollback
MODULE_big = rollback
OBJS = \
	src/rollback.o \
	src/util.o \
	src/cache.o \
	src/capture.o \
	src/point.o \
	src/track.o \
	src/timetravel.o \
	src/restore.o \
	src/heaprestore.o \
	src/ddl.o \
	src/migration.o \
	src/journal.o \
	src/undoplan.o \
	src/revert.o \
	src/check.o \
	src/audit.o \
	src/autorevert.o \
	src/worker.o

DATA = $(wildcard sql/rollback--*.sql)

REGRESS = $(patsubst test/sql/%.sql,%,$(sort $(wildcard test/sql/*.sql)))
REGRESS_OPTS = --inputdir=test --load-extension=rollback

ISOLATION = $(patsubst test/specs/%.spec,%,$(sort $(wildcard test/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test --load-extension=rollback

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -I$(srcdir)/src -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -Wno-missing-field-initializers

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

.PHONY: demo test deps
deps:
	bash scripts/deps.sh

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh
