/*
 * pquic.h -- helper declarations for PDS example pluglets, in the style of PQUIC plugins.
 *
 * Written for the Plugin Distribution System; not PQUIC's own header. A pluglet is one C
 * function compiled to an eBPF object with the pinned recipe (clang -O2 -emit-llvm, then llc -march=bpf).
 * Helpers are external functions: clang emits `call -1` plus an R_BPF_64_32 relocation
 * naming the helper, which the PQUIC VM resolves when it loads the pluglet. Access keys
 * (AK_*) select which context field get_* / set_* read or write; PVs check every set_*
 * key against the protoop's side-effect spec, so pass them as constants.
 *
 * The access-key numbers are PQUIC's (picoquic/getset.h): a pluglet built against this header
 * touches in PQUIC the field its name says. benchmarks/protocol_configs.py --check compares
 * them with a PQUIC tree; every example's copy of this file must stay byte-identical.
 */
#ifndef PDS_PQUIC_H
#define PDS_PQUIC_H

/* System headers, as PQUIC's own picoquic.h includes them: the recipe compiles host-target IR. */
#include <stddef.h>
#include <stdint.h>

typedef uint64_t protoop_arg_t;
typedef uint16_t access_key_t;

typedef struct st_picoquic_cnx_t picoquic_cnx_t;
typedef struct st_picoquic_path_t picoquic_path_t;
typedef struct st_picoquic_packet_t picoquic_packet_t;
typedef struct st_picoquic_packet_context_t picoquic_packet_context_t;
typedef struct st_picoquic_sack_item_t picoquic_sack_item_t;
typedef struct st_picoquic_connection_id_t picoquic_connection_id_t;
typedef struct st_picoquic_stream_head picoquic_stream_head;
typedef struct st_picoquic_crypto_context_t picoquic_crypto_context_t;
typedef struct st_picoquic_packet_header picoquic_packet_header;
typedef struct st_plugin_req_pid_t plugin_req_pid_t;

#define PROTOOP_NUMARGS 8

/* Access keys, one group per context (get_cnx / set_cnx: AK_CNX_*, get_path / set_path:
 * AK_PATH_*, get_pkt_ctx / set_pkt_ctx: AK_PKTCTX_*, ...). For AK_CNX_INPUT / AK_CNX_OUTPUT
 * the param argument is the index of the protoop input / output; for AK_CNX_PATH the path
 * index. */
#define AK_CNX_INPUT 0x00
#define AK_CNX_OUTPUT 0x01
#define AK_CNX_PROPOSED_VERSION 0x02
#define AK_CNX_IS_0RTT_ACCEPTED 0x03
#define AK_CNX_REMOTE_PARMETERS_RECEIVED 0x04
#define AK_CNX_CURRENT_SPIN 0x05
#define AK_CNX_CLIENT_MODE 0x06
#define AK_CNX_PREV_SPIN 0x07
#define AK_CNX_SPIN_VEC 0x08
#define AK_CNX_SPIN_EDGE 0x09
#define AK_CNX_SPIN_LAST_TRIGGER 0x0a
#define AK_CNX_LOCAL_PARAMETER 0x0b
#define AK_CNX_REMOTE_PARAMETER 0x0c
#define AK_CNX_MAX_EARLY_DATA_SIZE 0x0d
#define AK_CNX_STATE 0x0e
#define AK_CNX_INITIAL_CID 0x0f
#define AK_CNX_START_TIME 0x10
#define AK_CNX_APPLICATION_ERROR 0x11
#define AK_CNX_LOCAL_ERROR 0x12
#define AK_CNX_REMOTE_APPLICATION_ERROR 0x13
#define AK_CNX_REMOTE_ERROR 0x14
#define AK_CNX_OFFENDING_FRAME_TYPE 0x15
#define AK_CNX_NEXT_WAKE_TIME 0x16
#define AK_CNX_LATEST_PROGRESS_TIME 0x17
#define AK_CNX_NB_PATH_CHALLENGE_SENT 0x18
#define AK_CNX_NB_PATH_RESPONSE_RECEIVED 0x19
#define AK_CNX_NB_ZERO_RTT_SENT 0x1a
#define AK_CNX_NB_ZERO_RTT_ACKED 0x1b
#define AK_CNX_NB_RETRANSMISSION_TOTAL 0x1c
#define AK_CNX_NB_SPURIOUS 0x1d
#define AK_CNX_DATA_SENT 0x24
#define AK_CNX_DATA_RECEIVED 0x25
#define AK_CNX_MAXDATA_LOCAL 0x26
#define AK_CNX_MAXDATA_REMOTE 0x27
#define AK_CNX_MAX_STREAM_ID_BIDIR_LOCAL 0x28
#define AK_CNX_MAX_STREAM_ID_UNIDIR_LOCAL 0x29
#define AK_CNX_MAX_STREAM_ID_BIDIR_REMOTE 0x2a
#define AK_CNX_MAX_STREAM_ID_UNIDIR_REMOTE 0x2b
#define AK_CNX_KEEP_ALIVE_INTERVAL 0x2c
#define AK_CNX_NB_PATHS 0x2d
#define AK_CNX_PATH 0x2e
#define AK_CNX_CONGESTION_CONTROL_ALGORITHM 0x2f
#define AK_CNX_TLS_STREAM 0x30
#define AK_CNX_CRYPTO_CONTEXT 0x31
#define AK_CNX_RETRY_TOKEN_LENGTH 0x32
#define AK_CNX_WAKE_NOW 0x33
#define AK_CNX_RETURN_VALUE 0x34
#define AK_CNX_RESERVED_FRAMES 0x35
#define AK_CNX_RETRY_FRAMES 0x36
#define AK_CNX_FIRST_STREAM 0x38
#define AK_CNX_PLUGIN_REQUESTED 0x39
#define AK_CNX_PIDS_TO_REQUEST_SIZE 0x3a
#define AK_CNX_PIDS_TO_REQUEST 0x3b
#define AK_CNX_RTX_FRAMES 0x3c
#define AK_CNX_HANDSHAKE_DONE 0x3d
#define AK_CNX_HANDSHAKE_DONE_SENT 0x3e
#define AK_CNX_HANDSHAKE_DONE_ACKED 0x3f
#define AK_CNX_READY_NOTIFIED 0x40
#define AK_CNX_QUIC_MTU_MAX 0x41
#define AK_PATH_PEER_ADDR 0x00
#define AK_PATH_PEER_ADDR_LEN 0x01
#define AK_PATH_LOCAL_ADDR 0x02
#define AK_PATH_LOCAL_ADDR_LEN 0x03
#define AK_PATH_IF_INDEX_LOCAL 0x04
#define AK_PATH_CHALLENGE 0x05
#define AK_PATH_CHALLENGE_TIME 0x06
#define AK_PATH_CHALLENGE_RESPONSE 0x07
#define AK_PATH_CHALLENGE_REPEAT_COUNT 0x08
#define AK_PATH_MTU_PROBE_SENT 0x09
#define AK_PATH_CHALLENGE_VERIFIED 0x0a
#define AK_PATH_CHALLENGE_RESPONSE_TO_SEND 0x0b
#define AK_PATH_PING_RECEIVED 0x0c
#define AK_PATH_MAX_ACK_DELAY 0x0d
#define AK_PATH_SMOOTHED_RTT 0x0e
#define AK_PATH_RTT_VARIANT 0x0f
#define AK_PATH_RETRANSMIT_TIMER 0x10
#define AK_PATH_RTT_MIN 0x11
#define AK_PATH_MAX_SPURIOUS_RTT 0x12
#define AK_PATH_MAX_REORDER_DELAY 0x13
#define AK_PATH_MAX_REORDER_GAP 0x14
#define AK_PATH_SEND_MTU 0x15
#define AK_PATH_SEND_MTU_MAX_TRIED 0x16
#define AK_PATH_CWIN 0x17
#define AK_PATH_BYTES_IN_TRANSIT 0x18
#define AK_PATH_CONGESTION_ALGORITHM_STATE 0x19
#define AK_PATH_PACKET_EVALUATION_TIME 0x1a
#define AK_PATH_PACING_BUCKET_NANO_SEC 0x1b
#define AK_PATH_PACING_BUCKET_MAX 0x1c
#define AK_PATH_PACING_PACKET_TIME_NANOSEC 0x1d
#define AK_PATH_LOCAL_CID 0x1e
#define AK_PATH_REMOTE_CID 0x1f
#define AK_PATH_RESET_SECRET 0x20
#define AK_PATH_PKT_CTX 0x21
#define AK_PATH_NB_PKT_SENT 0x22
#define AK_PATH_DELIVERED 0x23
#define AK_PATH_DELIVERED_LIMITED_INDEX 0x24
#define AK_PATH_PACING_PACKET_TIME_MICROSEC 0x25
#define AK_PATH_RTT_SAMPLE 0x26
#define AK_PATH_DELIVERED_PRIOR 0x27
#define AK_PATH_BANDWIDTH_ESTIMATE 0x28
#define AK_PKTCTX_SEND_SEQUENCE 0x00
#define AK_PKTCTX_FIRST_SACK_ITEM 0x01
#define AK_PKTCTX_TIME_STAMP_LARGEST_RECEIVED 0x02
#define AK_PKTCTX_HIGHEST_ACK_SENT 0x03
#define AK_PKTCTX_HIGHEST_ACK_TIME 0x04
#define AK_PKTCTX_ACK_DELAY_LOCAL 0x05
#define AK_PKTCTX_NB_RETRANSMIT 0x06
#define AK_PKTCTX_LATEST_RETRANSMIT_TIME 0x07
#define AK_PKTCTX_HIGHEST_ACKNOWLEDGED 0x08
#define AK_PKTCTX_LATEST_TIME_ACKNOWLEDGED 0x09
#define AK_PKTCTX_RETRANSMIT_NEWEST 0x0a
#define AK_PKTCTX_RETRANSMIT_OLDEST 0x0b
#define AK_PKTCTX_RETRANSMITTED_NEWEST 0x0c
#define AK_PKTCTX_RETRANSMITTED_OLDEST 0x0d
#define AK_PKTCTX_ACK_NEEDED 0x0e
#define AK_PKTCTX_LATEST_RETRANSMIT_CC_NOTIFICATION_TIME 0x0f
#define AK_PKTCTX_LATEST_PROGRESS_TIME 0x10
#define AK_PKT_PREVIOUS_PACKET 0x00
#define AK_PKT_NEXT_PACKET 0x01
#define AK_PKT_SEND_PATH 0x02
#define AK_PKT_SEQUENCE_NUMBER 0x03
#define AK_PKT_SEND_TIME 0x04
#define AK_PKT_LENGTH 0x05
#define AK_PKT_CHECKSUM_OVERHEAD 0x06
#define AK_PKT_OFFSET 0x07
#define AK_PKT_TYPE 0x08
#define AK_PKT_CONTEXT 0x09
#define AK_PKT_IS_PURE_ACK 0x0b
#define AK_PKT_CONTAINS_CRYPTO 0x0c
#define AK_PKT_IS_CONGESTION_CONTROLLED 0x0d
#define AK_PKT_BYTES 0x0e
#define AK_PKT_IS_MTU_PROBE 0x10
#define AK_PKT_DELIVERED_PRIOR 0x11
#define AK_PKT_DELIVERED_TIME_PRIOR 0x12
#define AK_PKT_DELIVERED_SENT_PRIOR 0x13
#define AK_PKT_DELIVERED_APP_LIMITED 0x14
#define AK_PKT_HAS_HANDSHAKE_DONE 0x15
#define AK_SACKITEM_NEXT_SACK 0x00
#define AK_SACKITEM_START_RANGE 0x01
#define AK_SACKITEM_END_RANGE 0x02
#define AK_CNXID_ID 0x00
#define AK_CNXID_LEN 0x01
#define AK_STREAMHEAD_SEND_QUEUE 0x00
#define AK_STREAMHEAD_CONSUMED_OFFSET 0x01
#define AK_STREAMHEAD_NEXT_STREAM 0x02
#define AK_STREAMHEAD_STREAM_ID 0x03
#define AK_STREAMHEAD_MAX_DATA_REMOTE 0x04
#define AK_STREAMHEAD_SENT_OFFSET 0x05
#define AK_STREAMHEAD_SENDING_OFFSET 0x07
#define AK_STREAMHEAD_MAX_DATA_LOCAL 0x08
#define AK_STREAMHEAD_FLAGS_FIN_REQUESTED 0x09
#define AK_STREAMHEAD_FLAGS_FIN_SENT 0x0a
#define AK_STREAMHEAD_FLAGS_FIN_RECEIVED 0x0b
#define AK_STREAMHEAD_FLAGS_FIN_SIGNALLED 0x0c
#define AK_STREAMHEAD_FLAGS_RESET_REQUESTED 0x0d
#define AK_STREAMHEAD_FLAGS_RESET_SENT 0x0e
#define AK_STREAMHEAD_FLAGS_RESET_RECEIVED 0x0f
#define AK_STREAMHEAD_FLAGS_RESET_SIGNALLED 0x10
#define AK_STREAMHEAD_FLAGS_STOP_SENDING_REQUESTED 0x11
#define AK_STREAMHEAD_FLAGS_STOP_SENDING_SENT 0x12
#define AK_STREAMHEAD_FLAGS_STOP_SENDING_RECEIVED 0x13
#define AK_STREAMHEAD_FLAGS_STOP_SENDING_SIGNALLED 0x14
#define AK_STREAMHEAD_FLAGS_MAX_STREAM_UPDATED 0x15
#define AK_STREAMDATA_LENGTH 0x00
#define AK_STREAMDATA_OFFSET 0x01
#define AK_CRYPTOCONTEXT_AEAD_ENCRYPTION 0x00
#define AK_PH_DESTINATION_CNXID 0x00
#define AK_PH_OFFSET 0x01
#define AK_PH_PAYLOAD_LENGTH 0x02
#define AK_PH_SEQUENCE_NUMBER 0x03
#define AK_PH_EPOCH 0x04
#define AK_PH_PTYPE 0x05
#define AK_PH_PC 0x06
#define AK_PIDREQ_PID_ID 0x00
#define AK_PIDREQ_PLUGIN_NAME 0x01
#define AK_PIDREQ_REQUESTED 0x02

/* Reading and writing context fields. The key is the second argument (r2) of every get_* / set_*;
 * the metadata helpers store plugin-private values at an index (r2 for the connection, r3
 * for the others). */
extern protoop_arg_t get_cnx(picoquic_cnx_t *cnx, access_key_t key, uint16_t param);
extern void set_cnx(picoquic_cnx_t *cnx, access_key_t key, uint16_t param, protoop_arg_t value);
extern protoop_arg_t get_path(picoquic_path_t *path, access_key_t key, uint16_t param);
extern void set_path(picoquic_path_t *path, access_key_t key, uint16_t param, protoop_arg_t value);
extern protoop_arg_t get_pkt_ctx(picoquic_packet_context_t *pkt_ctx, access_key_t key);
extern void set_pkt_ctx(picoquic_packet_context_t *pkt_ctx, access_key_t key, protoop_arg_t value);
extern protoop_arg_t get_pkt(picoquic_packet_t *pkt, access_key_t key);
extern void set_pkt(picoquic_packet_t *pkt, access_key_t key, protoop_arg_t value);
extern protoop_arg_t get_sack_item(picoquic_sack_item_t *item, access_key_t key);
extern void set_sack_item(picoquic_sack_item_t *item, access_key_t key, protoop_arg_t value);
extern protoop_arg_t get_cnxid(picoquic_connection_id_t *cnxid, access_key_t key);
extern void set_cnxid(picoquic_connection_id_t *cnxid, access_key_t key, protoop_arg_t value);
extern protoop_arg_t get_stream_head(picoquic_stream_head *stream, access_key_t key);
extern void set_stream_head(picoquic_stream_head *stream, access_key_t key, protoop_arg_t value);
extern protoop_arg_t get_crypto_context(picoquic_crypto_context_t *crypto, access_key_t key);
extern void set_crypto_context(picoquic_crypto_context_t *crypto, access_key_t key, protoop_arg_t value);
extern protoop_arg_t get_ph(picoquic_packet_header *ph, access_key_t key);
extern void set_ph(picoquic_packet_header *ph, access_key_t key, protoop_arg_t value);
extern protoop_arg_t get_preq(plugin_req_pid_t *preq, access_key_t key);
extern void set_preq(plugin_req_pid_t *preq, access_key_t key, protoop_arg_t value);

extern protoop_arg_t get_cnx_metadata(picoquic_cnx_t *cnx, int index);
extern void set_cnx_metadata(picoquic_cnx_t *cnx, int index, protoop_arg_t value);
extern protoop_arg_t get_path_metadata(picoquic_cnx_t *cnx, picoquic_path_t *path, int index);
extern void set_path_metadata(picoquic_cnx_t *cnx, picoquic_path_t *path, int index, protoop_arg_t value);
extern protoop_arg_t get_pkt_ctx_metadata(picoquic_cnx_t *cnx, picoquic_packet_context_t *pkt_ctx, int index);
extern void set_pkt_ctx_metadata(picoquic_cnx_t *cnx, picoquic_packet_context_t *pkt_ctx, int index,
                                 protoop_arg_t value);
extern protoop_arg_t get_pkt_metadata(picoquic_cnx_t *cnx, picoquic_packet_t *pkt, int index);
extern void set_pkt_metadata(picoquic_cnx_t *cnx, picoquic_packet_t *pkt, int index, protoop_arg_t value);

extern void *my_malloc(picoquic_cnx_t *cnx, unsigned int size);
extern void my_free(picoquic_cnx_t *cnx, void *ptr);
extern void *my_memcpy(void *dst, const void *src, size_t n);
extern void *my_memset(void *p, int c, size_t n);
extern uint64_t picoquic_current_time(void);

#endif /* PDS_PQUIC_H */
