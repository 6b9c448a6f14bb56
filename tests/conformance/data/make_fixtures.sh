#!/usr/bin/env bash
# Regenerates the tiny Source fixtures of the conformance suite (committed; rerun only to change them): CheXpert,
# MIMIC-CXR-JPG and manifest layouts with 2 train / 1 val / 1 test image each (8×8 grey images), so
# that every Source plugin can be built from a config by tests/conformance. Each layout also lists one image whose
# file is absent, which the source must skip (the contract: every listed image exists). NIH uses the embedded sample.
# Images are 8×8 grey PNGs written by python3 (zlib); the .jpg names of the CheXpert/MIMIC layouts hold PNG bytes,
# which daug's image reader accepts (it detects the format from the bytes).
set -euo pipefail
cd "$(dirname "$0")"
rm -rf chexpert mimic manifest
img() {  # img GREY_PERCENT PATH
  mkdir -p "$(dirname "$2")"
  python3 -c 'import sys,struct,zlib
v=int(sys.argv[1])*255//100
def chunk(t,d): return struct.pack(">I",len(d))+t+d+struct.pack(">I",zlib.crc32(t+d)&0xffffffff)
raw=b"".join(b"\x00"+bytes([v])*8 for _ in range(8))
open(sys.argv[2],"wb").write(b"\x89PNG\r\n\x1a\n"+chunk(b"IHDR",struct.pack(">IIBBBBB",8,8,8,0,0,0,0))+chunk(b"IDAT",zlib.compress(raw))+chunk(b"IEND",b""))' "$1" "$2"
}

# CheXpert: root folder name "chexpert" prefixes Path (the download layout), train/valid/test CSVs.
hdr='Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,Fracture,Support Devices'
mkdir -p chexpert
printf '%s\n' "$hdr" \
  'chexpert/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,1.0,,,,,,,,,0.0,,,,1.0' \
  'chexpert/train/patient00002/study1/view1_frontal.jpg,Male,87,Frontal,PA,,,-1.0,1.0,,-1.0,,,,,1.0,,,' \
  'chexpert/train/patient00002/study1/view2_lateral.jpg,Male,87,Lateral,,,,-1.0,1.0,,-1.0,,,,,1.0,,,' \
  'chexpert/train/patient00003/study1/view1_frontal.jpg,Male,40,Frontal,PA,1.0,,,,,,,,,,,,,' > chexpert/train.csv
printf '%s\n' "$hdr" \
  'chexpert/valid/patient64541/study1/view1_frontal.jpg,Male,73,Frontal,AP,,,1.0,1.0,,,,,,0.0,,,,' > chexpert/valid.csv
printf '%s\n' "$hdr" \
  'chexpert/test/patient64741/study1/view1_frontal.jpg,Female,55,Frontal,PA,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0' > chexpert/test.csv
for p in train/patient00001/study1/view1_frontal train/patient00002/study1/view1_frontal \
         train/patient00002/study1/view2_lateral valid/patient64541/study1/view1_frontal \
         test/patient64741/study1/view1_frontal; do
  img 50 "chexpert/$p.jpg"
done

# MIMIC-CXR-JPG: files/pXX/pSUBJECT/sSTUDY/DICOM.jpg, split/metadata/chexpert CSVs, reports beside the images.
mkdir -p mimic
lbl='subject_id,study_id,Atelectasis,Cardiomegaly,Consolidation,Edema,Enlarged Cardiomediastinum,Fracture,Lung Lesion,Lung Opacity,No Finding,Pleural Effusion,Pleural Other,Pneumonia,Pneumothorax,Support Devices'
split='dicom_id,study_id,subject_id,split'
meta='dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,StudyTime,ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,PatientOrientationCodeSequence_CodeMeaning'
while read -r subj study dicom view sp row; do
  img 60 "mimic/files/p${subj:0:2}/p$subj/s$study/$dicom.jpg"
  split+=$'\n'"$dicom,$study,$subj,$sp"
  meta+=$'\n'"$dicom,$subj,$study,CHEST (PA AND LAT),$view,8,8,21800506,213014.531,CHEST (PA AND LAT),postero-anterior,Erect"
  lbl+=$'\n'"$subj,$study,$row"
  printf '                                 FINAL REPORT\n FINDINGS:  Report of study %s.\n \n IMPRESSION:  No acute process.\n' \
    "$study" > "mimic/files/p${subj:0:2}/p$subj/s$study.txt"
done <<'ROWS'
10000032 50414267 02aa804e-bde0afdd-112c0b34-7bc16630-4e384014 PA train ,,,,,,,,1.0,,,,,
10000033 53189527 2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab AP train -1.0,,,,,,,,,1.0,,,,
11000011 51029426 aaaaaaaa-11111111-22222222-33333333-44444444 AP validate ,1.0,,,,,,,,,,,,
19999987 58971208 bbbbbbbb-11111111-22222222-33333333-44444444 PA test ,,,,,,,1.0,,,,1.0,,
ROWS
# One listed image whose file is absent (the source must skip it: every listed image exists).
split+=$'\n'"dddddddd-11111111-22222222-33333333-44444444,50414267,10000032,train"
meta+=$'\n'"dddddddd-11111111-22222222-33333333-44444444,10000032,50414267,CHEST (PA AND LAT),PA,8,8,21800506,213014.531,CHEST (PA AND LAT),postero-anterior,Erect"
printf '%s\n' "$split" > mimic/mimic-cxr-2.0.0-split.csv
printf '%s\n' "$meta" > mimic/mimic-cxr-2.0.0-metadata.csv
printf '%s\n' "$lbl" > mimic/mimic-cxr-2.0.0-chexpert.csv

# Generic manifest: image,split,report,patient + the 14 classes (any order).
mkdir -p manifest/images
cls='Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,Fracture,Support Devices,No Finding'
printf '%s\n' "image,split,report,patient,$cls" \
  'images/a.png,train,"Heart size normal, lungs clear.",p1,0,0,0,0,0,0,0,0,0,0,0,0,0,1' \
  'images/b.png,train,"Small left effusion.",p2,,,,,,,,,,1,,,,' \
  'images/c.png,validate,Cardiomegaly.,p3,0,1,0,0,0,0,0,0,0,0,0,0,0,0' \
  'images/d.png,test,,p4,0,0,1,-1,0,0,0,0,0,0,0,0,0,0' \
  'images/missing.png,train,,p5,0,0,0,0,0,0,0,0,0,0,0,0,0,1' > manifest/manifest.csv
for n in a b c d; do img 40 "manifest/images/$n.png"; done
echo "fixtures written under $(pwd)"
