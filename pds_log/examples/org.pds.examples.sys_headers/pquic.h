/*
 * pquic.h -- helper declarations for PDS example pluglets, in the style of PQUIC plugins.
 *
 * Written for the Plugin Distribution System; not PQUIC's own header. A pluglet is one C
 * function compiled to an eBPF object with the pinned recipe (clang -O2 -emit-llvm, then llc -march=bpf).
 * Helpers are external functions: clang emits `call -1` plus an R_BPF_64_32 relocation
 * naming the helper, which the PQUIC VM resolves when it loads the pluglet. Access keys
 * (AK_*) select which context field get_* / set_* read or write; PVs check every set_*
 * key against the protoop's side-effect spec, so pass them as constants.
 */
#ifndef PDS_PQUIC_H
#define PDS_PQUIC_H

/* System headers, as PQUIC's own picoquic.h includes them: the recipe compiles host-target IR. */
#include <stddef.h>
#include <stdint.h>

typedef uint64_t protoop_arg_t;

typedef struct st_picoquic_cnx_t picoquic_cnx_t;
typedef struct st_picoquic_path_t picoquic_path_t;
typedef struct st_picoquic_packet_t picoquic_packet_t;

#define PROTOOP_NUMARGS 8

/* connection fields (get_cnx / set_cnx) */
#define AK_CNX_INPUT                      0x00  /* param: index of the protoop input */
#define AK_CNX_OUTPUT                     0x01  /* param: index of the protoop output */
#define AK_CNX_STATE                      0x02
#define AK_CNX_LATEST_PROGRESS_TIME       0x03
#define AK_CNX_NB_PATHS                   0x04
#define AK_CNX_PATH                       0x05  /* param: path index */
#define AK_CNX_CONGESTION_CONTROL_ALGORITHM 0x06
#define AK_CNX_SPIN_BIT                   0x07

/* path fields (get_path / set_path) */
#define AK_PATH_SMOOTHED_RTT              0x10
#define AK_PATH_RTT_VARIANT               0x11
#define AK_PATH_RTT_MIN                   0x12
#define AK_PATH_CWIN                      0x13
#define AK_PATH_BYTES_IN_TRANSIT          0x14
#define AK_PATH_RETRANSMIT_TIMER          0x15
#define AK_PATH_MAX_ACK_DELAY             0x16

/* packet fields (get_pkt / set_pkt) */
#define AK_PKT_LENGTH                     0x20
#define AK_PKT_TYPE                       0x21

extern protoop_arg_t get_cnx(picoquic_cnx_t *cnx, int key, int param);
extern void set_cnx(picoquic_cnx_t *cnx, int key, int param, protoop_arg_t value);
extern protoop_arg_t get_path(picoquic_path_t *path, int key, int param);
extern void set_path(picoquic_path_t *path, int key, int param, protoop_arg_t value);
extern protoop_arg_t get_pkt(picoquic_packet_t *pkt, int key);
extern void set_pkt(picoquic_packet_t *pkt, int key, protoop_arg_t value);

extern void *my_malloc(picoquic_cnx_t *cnx, unsigned int size);
extern void my_free(picoquic_cnx_t *cnx, void *ptr);
extern void *my_memcpy(void *dst, const void *src, size_t n);
extern void *my_memset(void *p, int c, size_t n);
extern uint64_t picoquic_current_time(void);
extern int helper_protoop_printf(picoquic_cnx_t *cnx, const char *fmt, protoop_arg_t *args, size_t nargs);

#endif /* PDS_PQUIC_H */
