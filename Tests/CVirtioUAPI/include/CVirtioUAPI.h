// Test-only window onto Linux's <linux/virtio_ring.h>: an independent reference for the
// ring layouts and vring_need_event, written by others, so layout tests do not compare
// our formulas with themselves.
#ifndef CVIRTIO_UAPI_H
#define CVIRTIO_UAPI_H
#include <stdint.h>

typedef struct {
    uint64_t size;
    uint64_t avail_offset;
    uint64_t used_offset;
    uint64_t used_event_offset;   /* vring_used_event: avail->ring[num] */
    uint64_t avail_event_offset;  /* vring_avail_event: used->ring[num] */
    uint64_t avail_ring0_offset;  /* avail->ring[0] relative to avail */
    uint64_t used_ring0_offset;   /* used->ring[0] relative to used */
} uapi_split_layout;

uapi_split_layout uapi_vring_layout(unsigned int num, unsigned long align);
int uapi_vring_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old);

uint64_t uapi_sizeof_vring_desc(void);
uint64_t uapi_sizeof_vring_used_elem(void);
uint64_t uapi_sizeof_vring_packed_desc(void);
uint64_t uapi_offsetof_packed_desc_addr(void);
uint64_t uapi_offsetof_packed_desc_len(void);
uint64_t uapi_offsetof_packed_desc_id(void);
uint64_t uapi_offsetof_packed_desc_flags(void);
uint64_t uapi_sizeof_vring_packed_desc_event(void);
uint64_t uapi_offsetof_packed_event_off_wrap(void);
uint64_t uapi_offsetof_packed_event_flags(void);

uint16_t uapi_desc_f_next(void);
uint16_t uapi_desc_f_write(void);
uint16_t uapi_desc_f_indirect(void);
uint16_t uapi_packed_desc_f_avail(void);
uint16_t uapi_packed_desc_f_used(void);
uint16_t uapi_used_f_no_notify(void);
uint16_t uapi_avail_f_no_interrupt(void);
uint16_t uapi_packed_event_flag_enable(void);
uint16_t uapi_packed_event_flag_disable(void);
uint16_t uapi_packed_event_flag_desc(void);
unsigned uapi_f_indirect_desc(void);
unsigned uapi_f_event_idx(void);
#endif
