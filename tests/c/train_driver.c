/* Drives an exported needlec training step from C (built and run by tests/test_training.py).
 *
 * Usage: train_driver STEPS INPUT.bin TARGET.bin
 *
 * Reads one batch (raw arrays sized by the generated header), runs STEPS
 * training steps on it with needlec_run and prints, one per line:
 *   step <i> loss <value>
 *   param 0.weight <every element of variable 0.weight, read with needlec_variable>
 *   past-end <whether needlec_variable(NEEDLEC_NUM_VARIABLES) is NULL>
 *   signature <needlec_signature()>
 * The training step must have inputs "input" and "target", one output
 * "loss" and a parameter variable "0.weight".
 */
#include <stdio.h>
#include <stdlib.h>

#include "train_step.h"

static NEEDLEC_INPUT_INPUT_CTYPE input[NEEDLEC_INPUT_INPUT_SIZE];
static NEEDLEC_INPUT_TARGET_CTYPE target[NEEDLEC_INPUT_TARGET_SIZE];

static int read_array(const char *path, void *data, size_t itemsize, size_t count) {
    FILE *f = fopen(path, "rb");
    size_t got;
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    got = fread(data, itemsize, count, f);
    fclose(f);
    if (got != count) {
        fprintf(stderr, "%s: expected %zu elements, found %zu\n", path, count, got);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    NEEDLEC_OUTPUT_LOSS_CTYPE loss;
    void *inputs[NEEDLEC_NUM_INPUTS];
    void *outputs[NEEDLEC_NUM_OUTPUTS];
    const NEEDLEC_VARIABLE_0_WEIGHT_CTYPE *weight;
    int steps, i;

    if (argc != 4) {
        fprintf(stderr, "usage: %s STEPS INPUT.bin TARGET.bin\n", argv[0]);
        return 2;
    }
    steps = atoi(argv[1]);
    if (read_array(argv[2], input, sizeof input[0], NEEDLEC_INPUT_INPUT_SIZE) != 0 ||
        read_array(argv[3], target, sizeof target[0], NEEDLEC_INPUT_TARGET_SIZE) != 0) {
        return 1;
    }
    inputs[NEEDLEC_INPUT_INPUT] = input;
    inputs[NEEDLEC_INPUT_TARGET] = target;
    outputs[NEEDLEC_OUTPUT_LOSS] = &loss;

    for (i = 0; i < steps; i++) {
        int32_t status = needlec_run(inputs, outputs);
        if (status != 0) {
            fprintf(stderr, "needlec_run failed with status %d\n", (int)status);
            return 1;
        }
        printf("step %d loss %.9g\n", i, (double)loss);
    }

    weight = (const NEEDLEC_VARIABLE_0_WEIGHT_CTYPE *)needlec_variable(NEEDLEC_VARIABLE_0_WEIGHT);
    printf("param %s", needlec_variables[NEEDLEC_VARIABLE_0_WEIGHT].name);
    for (i = 0; i < NEEDLEC_VARIABLE_0_WEIGHT_SIZE; i++) {
        printf(" %.9g", (double)weight[i]);
    }
    printf("\n");
    printf("past-end %s\n", needlec_variable(NEEDLEC_NUM_VARIABLES) == NULL ? "null" : "not-null");
    printf("signature %s\n", needlec_signature());
    return 0;
}
