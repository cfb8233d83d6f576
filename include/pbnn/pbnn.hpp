#pragma once
// The umbrella header: everything a training program needs.
#include "pbnn/augment.hpp"
#include "pbnn/binarize.hpp"
#include "pbnn/checkpoint.hpp"
#include "pbnn/dataset.hpp"
#include "pbnn/export.hpp"
#include "pbnn/format.hpp"
#include "pbnn/loss.hpp"
#include "pbnn/optim.hpp"
#include "pbnn/policy.hpp"
#include "pbnn/schedule.hpp"
#include "pbnn/sequential.hpp"
#include "pbnn/train.hpp"
