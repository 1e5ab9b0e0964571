/* xbgp.h -- helper declarations for the PDS xBGP example (in the style of xBGP plugins). */
#ifndef PDS_XBGP_H
#define PDS_XBGP_H
typedef unsigned long uint64_t;
typedef unsigned int uint32_t;
typedef unsigned char uint8_t;

#define ATTR_MED 4
#define PLUGIN_FILTER_ACCEPT 1
#define PLUGIN_FILTER_REJECT 2

struct path_attribute { uint8_t flags; uint8_t code; uint32_t length; uint64_t value; };

extern struct path_attribute *get_attr(int code);
extern uint64_t next(void);
#endif
