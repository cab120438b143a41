/*
 * chainstore.h
 *		Module-wide settings.
 */
#ifndef CHAINSTORE_H
#define CHAINSTORE_H

/* chainstore.progress_rows: NOTICE every this many rows in long scans */
extern int	cs_progress_rows;

#endif
