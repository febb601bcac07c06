/* struct_layout fixture for tests/test_elf.py: offsets differ between ilp32 and lp64. */
struct padded {
    char c;
    long l;
    short s;
    void *p;
    unsigned char tail[3];
};

typedef struct padded padded_t;

struct padded global_padded;
padded_t *padded_ptr = &global_padded;
