module fx-ml-pipeline/node-images

go 1.24
