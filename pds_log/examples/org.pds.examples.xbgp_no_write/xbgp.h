/* xbgp.h -- helper declarations for the PDS xBGP examples (in the style of xBGP's
 * xbgp_compliant_api, written for PDS). */
#ifndef PDS_XBGP_H
#define PDS_XBGP_H
typedef unsigned long uint64_t;
typedef unsigned int uint32_t;
typedef unsigned short uint16_t;
typedef unsigned char uint8_t;

#define ATTR_MED 4
#define ATTR_FLAG_OPTIONAL 0x80
#define PLUGIN_FILTER_ACCEPT 1
#define PLUGIN_FILTER_REJECT 2

struct path_attribute { uint8_t flags; uint8_t code; uint16_t length; uint8_t data[8]; };

extern struct path_attribute *get_attr_from_code(uint8_t code);
extern int add_attr(uint8_t code, uint8_t flags, uint16_t length, uint8_t *value);
extern int write_to_buffer(uint8_t *buffer, uint64_t len);
extern void *ctx_malloc(uint64_t size);
extern uint64_t next(void);
#endif
